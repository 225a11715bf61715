"""The benchmark's host driver (`ops/bench/run`), in parts: the scenarios and servers
(`scenarios`), the compose stack (`stack`), CPU, memory and the machine's speed (`cpu`), the
runs of the load generator and of wrk (`loads`), what each run must show (`verdicts`), and
RESULTS.md (`report`). Python 3.11+, standard library only: it runs on the host."""

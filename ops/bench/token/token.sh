#!/usr/bin/env bash
# Scenario 6 (issue 14): how many chat tokens per second the website gives out through nginx.
#
#   token.sh BASE_URL [SECONDS] [CONNECTIONS] [THREADS] [RATE]   e.g. token.sh http://nginx 15 32 2
#
# RATE (tokens/s offered on a timetable shared by the connections, see README.md; 0 or
# absent: each connection asks again as soon as it is answered, the most the website gives).
#
# Run INSIDE a container on the stack's compose network (curl, wrk, and jq or python3): it
# registers a fresh user, creates a room, checks that one POST /api/rooms/{room}/token
# answers 200 with a token, then runs wrk (token.lua) against that route with the session
# cookie and X-CSRF-Token, and prints ONE JSON line:
#   {"event":"window-start"}   (just before wrk starts; the set-up is over)
#   {"scenario":"token","requests":…,"seconds":…,"rps":…,"p50_ms":…,"p99_ms":…,"max_ms":…,
#    "non_2xx":…,"status_429":…,"socket_errors":…,"connections":…,"ok":…,"note":…}
# Exit status: 0 for a clean run (no non-2xx, no socket errors), 1 otherwise, 2 on bad use
# or a failed setup (then the JSON line has "ok":false and the reason in "error").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=${1:-}
seconds=${2:-15}
connections=${3:-32}
threads=${4:-2}
rate=${5:-0}

fail() {
  printf '{"scenario":"token","ok":false,"error":"%s"}\n' "$1"
  exit 2
}
[[ $base =~ ^https?://[^/]+$ ]] || fail "usage: token.sh BASE_URL [SECONDS] [CONNECTIONS] [THREADS] [RATE] (BASE_URL like http://nginx, no path)"
[[ $rate =~ ^[0-9]{1,5}$ ]] || fail "RATE must be a whole number of tokens/s (0: unpaced)"
for n in "$seconds" "$connections" "$threads"; do
  [[ $n =~ ^[1-9][0-9]{0,4}$ ]] || fail "SECONDS, CONNECTIONS and THREADS must be positive whole numbers"
done
((threads <= connections)) || fail "THREADS must not exceed CONNECTIONS"
for tool in curl wrk; do command -v "$tool" >/dev/null || fail "$tool is not installed"; done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jar=$work/cookies
suffix=$(od -An -tx1 -N5 /dev/urandom | tr -d ' \n')
email="bench-token-$suffix@example.com"
room="bench-token-$suffix"
password="token bench passphrase $suffix"

# curl with the jar; --fail-with-body is not used: statuses are checked one by one.
http() { curl -sS -b "$jar" -c "$jar" "$@"; }
form_csrf() { sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n 1; }

# 1. Register (the form's CSRF field comes with an anonymous cookie).
csrf=$(http "$base/register" | form_csrf)
[[ -n $csrf ]] || fail "no CSRF field on $base/register"
status=$(http -o /dev/null -w '%{http_code}' "$base/register" \
  --data-urlencode "csrf_token=$csrf" --data-urlencode "email=$email" \
  --data-urlencode "display_name=Token bench" --data-urlencode "password=$password")
[[ $status == 303 ]] || fail "registering answered $status, not 303 (429: nginx's NGINX_AUTH_RATE limit)"

# 2. A room of our own; the page's CSRF token is the session's from now on.
csrf=$(http "$base/rooms" | sed -n 's/.*<meta name="csrf-token" content="\([^"]*\)".*/\1/p' | head -n 1)
[[ -n $csrf ]] || fail "no csrf-token meta on $base/rooms (not logged in?)"
status=$(http -o /dev/null -w '%{http_code}' "$base/rooms" \
  --data-urlencode "csrf_token=$csrf" --data-urlencode "name=$room" --data-urlencode "title=token bench")
[[ $status == 303 ]] || fail "creating room $room answered $status, not 303"

# 3. The Cookie header from the jar (Netscape format; HttpOnly lines start "#HttpOnly_").
cookie=$(awk -F '\t' 'NF >= 7 { sub(/^#HttpOnly_/, "", $1); if ($1 !~ /^#/) printf "%s%s=%s", sep, $6, $7; sep = "; " }' "$jar")
[[ $cookie == *parley_session=* ]] || fail "no session cookie after registering"

# 4. One token by hand: 200 and a JWT, or the run means nothing.
path="/api/rooms/$room/token"
status=$(curl -sS -o "$work/answer" -w '%{http_code}' -X POST -H "Cookie: $cookie" \
  -H "X-CSRF-Token: $csrf" -H 'Content-Length: 0' "$base$path")
[[ $status == 200 ]] || fail "POST $path answered $status, not 200"
if command -v jq >/dev/null; then
  token=$(jq -r '.token // empty' "$work/answer")
else
  token=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("token", ""))' <"$work/answer")
fi
[[ $token =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || fail "POST $path gave no token"

# 5. The load: wrk prints its report on stderr's side; token.lua's done() prints the JSON.
# The line before it tells ops/bench/run when to start counting CPU (after the set-up's hashing).
printf '{"event":"window-start"}\n'
export TOKEN_PATH=$path TOKEN_COOKIE=$cookie TOKEN_CSRF=$csrf TOKEN_CONNECTIONS=$connections \
  TOKEN_THREADS=$threads
((rate > 0)) && export TOKEN_RATE=$rate
wrk --latency -t "$threads" -c "$connections" -d "${seconds}s" -s "$here/token.lua" "$base" \
  >"$work/wrk.out" || fail "wrk failed: $(tr '\n"' ' _' <"$work/wrk.out" | cut -c1-200)"
[[ -n ${TOKEN_BENCH_VERBOSE:-} ]] && grep -v '^{' "$work/wrk.out" >&2
line=$(grep '^{"scenario":"token"' "$work/wrk.out") || fail "wrk printed no JSON line"
printf '%s\n' "$line"
[[ $line == *'"ok":true'* ]]

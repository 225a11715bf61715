"""The app's routers, one per resource; those with forms come from deps.protected_router."""

"""A Kubernetes-compatible HTTPS API over a Backend (the durable fake store): what kubectl and
the `kubernetes` client need — discovery, CRUD, patches, server-side apply, the status
subresource, watch from a watch cache, Table responses — with bearer-token authentication.

`server.ApiServer` runs it on its own thread and event loop; `app.build_app` is the aiohttp
application; the other modules are pure helpers (selectors, patches, Status errors, TLS)."""

"""Backends: where objects live. `fake` keeps them in this process (durable in the DB);
`kube` (later) talks to a real cluster. Controllers only see the `Backend` protocol."""

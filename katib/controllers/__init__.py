"""Controllers: Experiment → Suggestion → Trial → Job, driven by one work queue.

They talk to the Backend protocol and the DB layer only, never to a concrete backend."""

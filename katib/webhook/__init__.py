"""Admission webhooks: pure functions from an AdmissionReview to its answer (`review`,
`experiment`), and the HTTPS server that serves them (`server`)."""

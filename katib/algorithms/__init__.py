"""Suggestion algorithms: pure numpy functions (space, trials, settings, state) → assignments.

Nothing here imports from katib outside this package. Entry points live in `registry`:
`ALGORITHMS`, `suggest`, `validate_algorithm`, `validate_space`; the request/reply types in
`base`. See shared spec algorithms.md for the upstream (v1alpha3) behaviour they mirror."""

"""flows: Prefect flows that sequence ovseg_core and storage, and the `ovseg` command line."""

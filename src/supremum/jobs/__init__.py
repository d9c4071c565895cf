"""Jobs: independent pieces of work run apart from the driver.

`worker` runs one of our worker modules (`python -m supremum.<name>_worker`) in a fresh process with
a JSON spec; `executor` decides where that process runs (here, or on Ray) and fans jobs out from
the driver (`fan_out`, `fan_out_completed`). The driver keeps the bookkeeping (store rows, result
files), so every executor writes the same results."""

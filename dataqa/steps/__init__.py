"""Pipeline steps: one module per DVC stage, each holding its ``run_stage``.
The top layer of the package: steps import everything below, nothing imports them."""

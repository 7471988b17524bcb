"""The `retrain` command and what only it runs: scaffolding a dataset, suggesting suites,
calibrating drift, the demo feeds. Runs on a person's machine; may use every other part.
"""

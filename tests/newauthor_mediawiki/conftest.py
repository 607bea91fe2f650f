# The plugin's own tests run against the *installed* package, from
# tests/test_plugin_kit_newauthor.py: the project's test run does not collect them itself.
collect_ignore = ["tests"]

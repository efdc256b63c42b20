"""Complete statesock examples for two real protocols (tested in tests/test_examples.py)."""

"""Helpers shared by the tests: a package of its own, since every test folder has a conftest."""

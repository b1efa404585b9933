"""The dashboard's HTML pages and the launch form they are built from."""

"""The watch-fed view, catalog index, instances and their checks, leader election."""

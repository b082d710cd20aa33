"""The dashboard's static assets."""

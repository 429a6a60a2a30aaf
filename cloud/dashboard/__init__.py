"""The ops dashboard: its static page (``static/``), the route that serves it, and the live feed
that pushes device messages to open pages."""

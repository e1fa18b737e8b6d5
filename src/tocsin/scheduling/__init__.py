"""Work the worker does on time: releasing scheduled notifications, the periodic sweep."""

"""The Bus port: fan-out of stream events between the nodes serving one user."""

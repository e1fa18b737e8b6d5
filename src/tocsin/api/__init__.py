"""HTTP routes: publish, tokens, users, me/*, health."""

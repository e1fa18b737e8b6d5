"""The publish pipeline: ordered stages that decide per recipient, the store's commit, then
the announcers that tell the world; and the one place reads go through."""

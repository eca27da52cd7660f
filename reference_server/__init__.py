"""The reference server: arrives with its own issue."""

"""Training the networks (``innerear-seg train``) on synthetic and user data."""

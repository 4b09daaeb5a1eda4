"""tandem: the application package of the support assistant (no Rasa imports here)."""

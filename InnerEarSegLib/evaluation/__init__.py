"""Scoring labels against references (``innerear-seg evaluate``): Dice, distances, volumes."""

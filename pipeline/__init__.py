"""The iHAS TFX pipeline definition and its runners."""

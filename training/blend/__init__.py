"""Offline work for the blend classifier: ZTF template simulator, fitting, study."""

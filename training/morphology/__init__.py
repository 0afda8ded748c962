"""Offline work for the morphology CNN: NIRCam simulator, augmentation, training, study."""

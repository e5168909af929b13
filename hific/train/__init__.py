"""Training HiFiC and its baselines ("no GAN", M&S) with one trainer (paper Sec. 3 and its official code)."""

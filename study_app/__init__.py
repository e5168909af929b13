"""HiFiC rating-study app: set up 2AFC studies from benchmark outputs, collect judgements, score them (Mentzer et al. 2020, Sec. 4.3)."""

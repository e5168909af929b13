"""Analysis of benchmark results and rating studies: the HiFiC paper's figures (Mentzer et al.,
NeurIPS 2020, Figs. 3-5) as notebooks, and ``python -m analysis.report`` to render them into one
HTML report."""

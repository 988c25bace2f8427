"""Conformance: every decoder checked against the CPU reference, numerically and for COCO AP."""

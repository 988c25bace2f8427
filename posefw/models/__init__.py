"""ViTPose models and checkpoint loading (torch is imported lazily, by these modules only)."""

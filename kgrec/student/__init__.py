"""Student stage: a small graph-aware recommender distilled from the teacher's features."""

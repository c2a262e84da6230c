"""What train.py, sample.py and evaluate.py share, kept out of the root so that the root
shows the course. Each file says in its docstring what it holds (docs/models.md: a list).
"""

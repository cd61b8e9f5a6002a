"""Worked solutions of the exercises in mnist_pl/exercises."""

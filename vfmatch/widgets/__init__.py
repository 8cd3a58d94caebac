"""The logic behind the book's interactive widgets, one module per chapter.

Each function takes plain parameter values (what a slider or dropdown holds)
and returns data or a figure, so it can be unit-tested without a browser; the
``build_*`` functions wire it to ipywidgets in a few lines.
"""

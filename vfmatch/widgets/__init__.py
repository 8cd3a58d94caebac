"""The logic behind the book's interactive widgets, one module per chapter.

Each function takes plain parameter values (what a slider or dropdown holds)
and returns data or a figure, so it can be unit-tested without a browser; the
``build_*`` functions wire it to ipywidgets in a few lines.

==================  =====================================================
module              book chapter
==================  =====================================================
``population``      ``book/01_population.ipynb``
``encoders``        ``book/02_voice_encoders.ipynb``, ``book/03_face_encoders.ipynb``
``metaproperties``  ``book/04_metaproperties.ipynb``
``matching``        ``book/05_distances_and_weights.ipynb``,
                    ``book/06_difficulty_and_curriculum.ipynb``,
                    ``book/07_matching_and_retrieval.ipynb``
``bounds``          ``book/05_distances_and_weights.ipynb`` (the bounds section)
``evaluation``      ``book/08_evaluation.ipynb``, ``book/09_robustness.ipynb``
``embeddings``      ``book/10_learned_embeddings.ipynb``
``fusion``          ``book/12_rebuilding_faces.ipynb``
``robustness``      ``book/09_robustness.ipynb`` (the trained matcher under noise and codecs)
``display``         every chapter: :func:`~vfmatch.widgets.display.show_in`
==================  =====================================================

The widgets sit above the job in the data flow: they import
:mod:`vfmatch.job.prepare` (what the book shares with ``vfmatch run``) and the
report's figures, never the command module :mod:`vfmatch.job.run`
(``robustness`` reuses the figure of :mod:`vfmatch.job.robustness_command`).
"""

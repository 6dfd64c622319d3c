"""``python -m synthorg_tasks``: the ``synthorg`` program without the console script."""

from synthorg_tasks.program import main

main()

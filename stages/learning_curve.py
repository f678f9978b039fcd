"""DVC stage 'learning_curve': see `dataqa learning_curve --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("learning_curve")

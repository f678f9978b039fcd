"""DVC stage 'tensors': see `dataqa tensors --help`."""

from dataqa.cli import stage_main

if __name__ == "__main__":
    stage_main("tensors")

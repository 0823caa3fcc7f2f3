from yoloswap.cli.app import run

run()

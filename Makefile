# The two commands of the README:
#   make demo   set up, then run the main job (a worked derivation end to end)
#   make test   set up, then run the tests (serial, then MPI with 2 ranks)
.PHONY: setup demo test lint bench
setup:
	scripts/setup
demo: setup
	scripts/demo
test:
	scripts/test
lint: setup
	.venv/bin/ruff check symfp tests derivations benchmarks
bench: setup
	.venv/bin/python benchmarks/run.py

# Thin wrappers around dev.py (which needs only Python 3.11).
.PHONY: run test bench lint reliability reliability-long
run:
	python3 dev.py run
test:
	python3 dev.py test
bench:
	python3 dev.py bench
# CI mode (also part of `make test`); reliability-long runs every scenario at full size.
reliability:
	python3 dev.py test tests/reliability -m reliability
reliability-long:
	DLCSYNC_RELIABILITY=long python3 dev.py test tests/reliability -m reliability -s

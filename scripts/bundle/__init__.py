"""Readers that turn ../shared/data into bundle records; used by build_demo_bundle.py."""

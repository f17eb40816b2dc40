#!/usr/bin/env bash
# Placeholder: replaced by the PostgreSQL backend work.
true

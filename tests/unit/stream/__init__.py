"""Tests of stream/'s top modules (errors, schemas, logs, arguments); its subpackages have their own folders."""

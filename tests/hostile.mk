# tests/hostile.mk: see tests/Makefile.am

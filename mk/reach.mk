# The course wherever learners are: student copies, a wheel, JupyterLab settings, root users.

# JupyterLab refuses to run as root (Docker images, cloud notebooks) without --allow-root.
LAB_USER_ID ?= $(shell id -u)
LAB_ROOT_FLAG = $(if $(filter 0,$(LAB_USER_ID)),--allow-root)
# Default settings for the lab (no "get notified about Jupyter news" prompt), installed where
# this JupyterLab reads overrides: <app dir>/settings/overrides.json. postBuild does the same.
LAB_SETTINGS_DIR = $$($(BIN)/python -c "from jupyterlab.commands import get_app_dir; print(get_app_dir())")/settings
LAB_SETTINGS_INSTALL = install -D -m 644 jupyterlab-settings/overrides.json "$(LAB_SETTINGS_DIR)/overrides.json"

.PHONY: student student-check wheel

student: setup  ## student copies (worked solutions removed, feedback kept) in build/student/
	rm -rf build/student
	$(BIN)/python -m mmcourse.student --out build/student notebooks/*.ipynb

student-check: student  ## execute every student copy (as CI does for the notebooks)
	$(OFFLINE_GUARD) $(BIN)/python -m pytest --nbval-lax build/student/notebooks \
		--timeout=600 -p no:cacheprovider

wheel: setup  ## build the course's wheel (code and shipped data) into dist/
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --no-index -w dist .

"""The application layer: spec files (:mod:`.spec`), the steps behind the verbs
(:mod:`.pipeline`), the whole run into a report folder (:mod:`.run`) and the command (:mod:`.cli`).
"""

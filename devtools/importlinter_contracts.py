"""A contract import-linter has no built-in type for: outside a function's package, only its public modules.

DESIGN.md: "no function importing another function's internals — use its public service module". For every
package `<container>.<name>` (e.g. functions.files), an importer outside it may import the package itself
(`create_app`) and its modules named in `public` (e.g. `service`, `schemas`), nothing else; `importers`
limits the check to the server's code (tests may reach into what they test). Packages added later are
covered without touching the configuration. Used by .importlinter (`make test` runs it).
"""

from __future__ import annotations

from importlinter import Contract, ContractCheck, fields, output
from importlinter.application import contract_utils


class PublicModulesContract(Contract):
    type_name = "public_modules"

    containers = fields.ListField(subfield=fields.ModuleField())
    public = fields.ListField(subfield=fields.StringField())
    also_public = fields.ListField(subfield=fields.StringField(), required=False)
    importers = fields.ListField(subfield=fields.ModuleField(), required=False)  # only these are checked
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)

    def check(self, graph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph, ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=contract_utils.AlertLevel.ERROR)
        public = set(self.public)  # type: ignore[arg-type]
        also = set(self.also_public or ())  # type: ignore[arg-type]
        checked = [m.name for m in self.importers or ()]  # type: ignore[attr-defined]
        links = []
        for container in self.containers:  # type: ignore[attr-defined]
            for package in sorted(graph.find_children(container.name)):
                for module in sorted(graph.find_descendants(package)):
                    first = module[len(package) + 1:].split(".")[0]
                    if first in public or module in also:
                        continue
                    for importer in sorted(graph.find_modules_that_directly_import(module)):
                        if importer == package or importer.startswith(package + "."):
                            continue
                        if checked and not any(importer == c or importer.startswith(c + ".") for c in checked):
                            continue
                        lines = [d["line_number"] for d in graph.get_import_details(importer=importer, imported=module)]
                        links.append({"importer": importer, "imported": module, "line_numbers": tuple(lines)})
        return ContractCheck(kept=not links, warnings=list(removal.warnings),
                             ignored_import_count=removal.ignored_import_count, metadata={"links": links})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Imports of another package's internals (use its public modules:"
                           f" {', '.join(self.public)}):", bold=False)  # type: ignore[arg-type]
        output.new_line()
        for link in check.metadata["links"]:
            lines = ", ".join(map(str, link["line_numbers"]))
            output.print_error(f"- {link['importer']} -> {link['imported']} (l.{lines})", bold=False)
        output.new_line()

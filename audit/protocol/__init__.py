"""The ablation protocol: plan expansion, overrides, confound check, execution, results.

Import the submodules directly (audit.protocol.plan, .runner, .results); this
package file stays empty so light CLI paths do not pay for hydra or omegaconf.
"""

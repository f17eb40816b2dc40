"""The research agent (paper §2.2): a ReAct loop over tools, driven by a policy.

::

    from medresearcher.agent import LLMPolicy, run_agent

    async with LLMGateway(settings) as gateway:
        toolbox = build_toolbox(settings, workspace, gateway=gateway)
        trajectory = await run_agent(
            question, policy=LLMPolicy(gateway, "agent"), toolbox=toolbox, limits=settings.agent
        )

The result is the canonical :class:`~medresearcher.schema.Trajectory`; ``on_step`` receives
each step as it happens, for live display.
"""

from medresearcher.agent.answer import extract_answer
from medresearcher.agent.limits import AgentLimits
from medresearcher.agent.loop import run_agent
from medresearcher.agent.policy import AssistantTurn, LLMPolicy, Policy, PolicyError
from medresearcher.agent.record import (
    GENERAL_TOOLS,
    MEDICAL_TOOLS,
    CallRecord,
    behaviour_stats,
    tool_category,
    trajectory_id,
)
from medresearcher.agent.steps import (
    AnswerStep,
    BudgetStep,
    CallStep,
    ErrorStep,
    MalformedCallStep,
    ObservationStep,
    Step,
    StepCallback,
    ThoughtStep,
    step_to_dict,
)

__all__ = [
    "GENERAL_TOOLS",
    "MEDICAL_TOOLS",
    "AgentLimits",
    "AnswerStep",
    "AssistantTurn",
    "BudgetStep",
    "CallRecord",
    "CallStep",
    "ErrorStep",
    "LLMPolicy",
    "MalformedCallStep",
    "ObservationStep",
    "Policy",
    "PolicyError",
    "Step",
    "StepCallback",
    "ThoughtStep",
    "behaviour_stats",
    "extract_answer",
    "run_agent",
    "step_to_dict",
    "tool_category",
    "trajectory_id",
]

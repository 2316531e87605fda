using System.Text;

namespace Loom.Text.Jinja;

/// <summary>The state of one <c>for</c> loop, as <c>loop.*</c> shows it.</summary>
sealed class JinjaLoop(IReadOnlyList<object?> items)
{
    public int Index0;

    public object? Get(string name) => name switch
    {
        "index0" => (long)Index0,
        "index" => (long)Index0 + 1,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : JinjaUndefined.Instance,
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : JinjaUndefined.Instance,
        "cycle" => new JinjaFunction((arguments, _) => arguments.Count == 0
            ? throw new InvalidOperationException("loop.cycle needs at least one value") : arguments[Index0 % arguments.Count]),
        _ => JinjaUndefined.Instance,
    };
}

/// <summary>Executes parsed statements: scopes (a <c>for</c> body and a macro get their own), output, control flow.</summary>
sealed class JinjaRenderer
{
    enum Flow { Normal, Break, Continue }

    readonly List<Dictionary<string, object?>> scopes = [];
    readonly IReadOnlyDictionary<string, object?> variables;

    public JinjaRenderer(IReadOnlyDictionary<string, object?> variables)
    {
        this.variables = variables;
        scopes.Add(new Dictionary<string, object?>(StringComparer.Ordinal));
    }

    JinjaRenderer(IReadOnlyDictionary<string, object?> variables, Dictionary<string, object?> templateScope, Dictionary<string, object?> local)
    {
        this.variables = variables;
        scopes.Add(templateScope);
        scopes.Add(local);
    }

    public void Execute(List<Node> nodes, StringBuilder output) => ExecuteBody(nodes, output);

    Flow ExecuteBody(List<Node> nodes, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            var flow = ExecuteNode(node, output);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    Flow ExecuteNode(Node node, StringBuilder output)
    {
        switch (node)
        {
            case TextNode text:
                output.Append(text.Text);
                return Flow.Normal;
            case OutputNode print:
                output.Append(JinjaValues.Str(Evaluate(print.Value)));
                return Flow.Normal;
            case IfNode branch:
                foreach (var (condition, body) in branch.Branches)
                    if (JinjaValues.Truthy(Evaluate(condition))) return ExecuteBody(body, output);
                return branch.Else is null ? Flow.Normal : ExecuteBody(branch.Else, output);
            case ForNode loop:
                ExecuteFor(loop, output);
                return Flow.Normal;
            case SetNode set:
                Assign(set, Evaluate(set.Value));
                return Flow.Normal;
            case SetBlockNode setBlock:
            {
                var captured = new StringBuilder();
                ExecuteBody(setBlock.Body, captured);
                scopes[^1][setBlock.Name] = captured.ToString();
                return Flow.Normal;
            }
            case MacroNode macro:
                scopes[^1][macro.Name] = Macro(macro);
                return Flow.Normal;
            case GenerationNode generation:
                return ExecuteBody(generation.Body, output);
            case BreakNode:
                return Flow.Break;
            case ContinueNode:
                return Flow.Continue;
            default:
                throw new JinjaException("unknown statement", node.Line, node.Column);
        }
    }

    void Assign(SetNode set, object? value)
    {
        if (set.Attribute is null)
        {
            scopes[^1][set.Name] = value;
            return;
        }
        if (Lookup(set.Name) is not JinjaNamespace ns)
            throw new JinjaException($"cannot assign attribute '{set.Attribute}' on '{set.Name}', which is not a namespace()", set.Line, set.Column);
        ns.Values[set.Attribute] = value;
    }

    void ExecuteFor(ForNode loop, StringBuilder output)
    {
        var source = Evaluate(loop.Iterable);
        var items = JinjaValues.Iterate(source)
            ?? throw new JinjaException($"'{JinjaValues.TypeName(source)}' object is not iterable", loop.Iterable.Line, loop.Iterable.Column);
        if (loop.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                scopes.Add(Bind(loop, item));
                try { if (JinjaValues.Truthy(Evaluate(loop.Filter))) kept.Add(item); }
                finally { scopes.RemoveAt(scopes.Count - 1); }
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            if (loop.Else is not null) ExecuteBody(loop.Else, output);
            return;
        }
        var state = new JinjaLoop(items);
        for (int i = 0; i < items.Count; i++)
        {
            state.Index0 = i;
            var scope = Bind(loop, items[i]);
            scope["loop"] = state;
            scopes.Add(scope);
            Flow flow;
            try { flow = ExecuteBody(loop.Body, output); }
            finally { scopes.RemoveAt(scopes.Count - 1); }
            if (flow == Flow.Break) break;
        }
    }

    static Dictionary<string, object?> Bind(ForNode loop, object? item)
    {
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (loop.Targets.Count == 1)
        {
            scope[loop.Targets[0]] = item;
            return scope;
        }
        var parts = item switch { object?[] tuple => tuple, List<object?> list => list.ToArray(), _ => null };
        if (parts is null || parts.Length != loop.Targets.Count)
            throw new JinjaException($"cannot unpack {JinjaValues.TypeName(item)} into {loop.Targets.Count} loop variables", loop.Line, loop.Column);
        for (int i = 0; i < parts.Length; i++) scope[loop.Targets[i]] = parts[i];
        return scope;
    }

    JinjaFunction Macro(MacroNode macro)
    {
        var templateScope = scopes[0];
        return (arguments, keywords) =>
        {
            if (arguments.Count > macro.Parameters.Count)
                throw new InvalidOperationException($"macro '{macro.Name}' takes {macro.Parameters.Count} arguments, got {arguments.Count}");
            var local = new Dictionary<string, object?>(StringComparer.Ordinal);
            var inner = new JinjaRenderer(variables, templateScope, local);
            for (int i = 0; i < macro.Parameters.Count; i++)
            {
                var (name, fallback) = macro.Parameters[i];
                local[name] = i < arguments.Count ? arguments[i]
                    : keywords.TryGetValue(name, out var given) ? given
                    : fallback is null ? JinjaUndefined.Instance : inner.Evaluate(fallback);
            }
            var output = new StringBuilder();
            inner.ExecuteBody(macro.Body, output);
            return output.ToString();
        };
    }

    object? Lookup(string name)
    {
        for (int i = scopes.Count - 1; i >= 0; i--)
            if (scopes[i].TryGetValue(name, out var value)) return value;
        if (variables.TryGetValue(name, out var given)) return given;
        return JinjaBuiltins.Globals.TryGetValue(name, out var global) ? global : JinjaUndefined.Instance;
    }

    public object? Evaluate(Expr expr)
    {
        try
        {
            return EvaluateCore(expr);
        }
        catch (Exception e) when (e is InvalidOperationException or InvalidCastException or ArgumentException or FormatException or OverflowException)
        {
            throw new JinjaException(e.Message, expr.Line, expr.Column);
        }
    }

    object? EvaluateCore(Expr expr)
    {
        switch (expr)
        {
            case LiteralExpr literal: return literal.Value;
            case NameExpr name: return Lookup(name.Name);
            case ListExpr list:
            {
                var items = list.Items.Select(Evaluate).ToList();
                return list.IsTuple ? items.ToArray() : items;
            }
            case DictExpr dict:
            {
                var result = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (key, value) in dict.Items) result[JinjaValues.Str(Evaluate(key))] = Evaluate(value);
                return result;
            }
            case AttributeExpr attribute:
                return JinjaBuiltins.GetAttribute(Evaluate(attribute.Target), attribute.Name);
            case IndexExpr index:
                return JinjaBuiltins.GetItem(Evaluate(index.Target), Evaluate(index.Index));
            case SliceExpr slice:
                return JinjaBuiltins.Slice(Evaluate(slice.Target), Optional(slice.Start), Optional(slice.Stop), Optional(slice.Step));
            case CallExpr call:
            {
                var function = Evaluate(call.Function);
                var arguments = call.Arguments.Select(Evaluate).ToList();
                var keywords = call.Keywords.ToDictionary(k => k.Name, k => Evaluate(k.Value), StringComparer.Ordinal);
                if (function is not JinjaFunction callable)
                    throw new InvalidOperationException(call.Function is NameExpr n ? $"'{n.Name}' is undefined or not callable" : $"'{JinjaValues.TypeName(function)}' object is not callable");
                return callable(arguments, keywords);
            }
            case FilterExpr filter:
            {
                var value = Evaluate(filter.Value);
                var arguments = filter.Arguments.Select(Evaluate).ToList();
                var keywords = filter.Keywords.ToDictionary(k => k.Name, k => Evaluate(k.Value), StringComparer.Ordinal);
                return JinjaBuiltins.Filter(filter.Name, value, arguments, keywords);
            }
            case TestExpr test:
            {
                var value = Evaluate(test.Value);
                bool result = JinjaBuiltins.Test(test.Name, value, test.Arguments.Select(Evaluate).ToList());
                return result != test.Negated;
            }
            case UnaryExpr unary:
            {
                var operand = Evaluate(unary.Operand);
                return unary.Operator switch
                {
                    "not" => !JinjaValues.Truthy(operand),
                    "-" => operand switch
                    {
                        long l => (object)(-l),
                        double d => -d,
                        bool b => b ? -1L : 0L,
                        _ => throw new InvalidOperationException($"bad operand type for unary -: '{JinjaValues.TypeName(operand)}'"),
                    },
                    _ => JinjaValues.IsNumber(operand) ? operand : throw new InvalidOperationException($"bad operand type for unary +: '{JinjaValues.TypeName(operand)}'"),
                };
            }
            case BinaryExpr binary:
            {
                if (binary.Operator == "and")
                {
                    var left = Evaluate(binary.Left);
                    return JinjaValues.Truthy(left) ? Evaluate(binary.Right) : left;
                }
                if (binary.Operator == "or")
                {
                    var left = Evaluate(binary.Left);
                    return JinjaValues.Truthy(left) ? left : Evaluate(binary.Right);
                }
                return JinjaBuiltins.Binary(binary.Operator, Evaluate(binary.Left), Evaluate(binary.Right));
            }
            case ConditionalExpr conditional:
                return JinjaValues.Truthy(Evaluate(conditional.Condition)) ? Evaluate(conditional.Then)
                    : conditional.Else is null ? JinjaUndefined.Instance : Evaluate(conditional.Else);
            default:
                throw new JinjaException("unknown expression", expr.Line, expr.Column);
        }
    }

    object? Optional(Expr? expr) => expr is null ? null : Evaluate(expr);
}

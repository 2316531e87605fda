using System.Globalization;

namespace Loom.Text.Jinja;

/// <summary>
/// Parses tokens into statements and expressions with Jinja2's precedence: conditional, <c>or</c>, <c>and</c>,
/// <c>not</c>, comparisons and <c>in</c>, <c>+ -</c>, <c>~</c>, <c>* / // %</c>, <c>**</c>, unary minus, then
/// postfix (attributes, indexing, slicing, calls), filters and tests.
/// </summary>
sealed class JinjaParser(List<Token> tokens)
{
    int pos;

    Token Current => tokens[pos];
    Token Next() => tokens[pos++];

    public List<Node> ParseTemplate()
    {
        var body = ParseBody(out var end);
        if (end is not null) throw Error($"unexpected '{end}'", tokens[pos - 1]);
        return body;
    }

    /// <summary>Statements up to a block tag the caller handles (<c>endif</c>, <c>else</c>…), whose name comes back in <paramref name="stop"/>.</summary>
    List<Node> ParseBody(out string? stop, params string[] stops)
    {
        var nodes = new List<Node>();
        while (true)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.End:
                    if (stops.Length > 0) throw Error($"missing {{% {stops[^1]} %}}", token);
                    stop = null;
                    return nodes;
                case TokenKind.Text:
                    Next();
                    nodes.Add(new TextNode(token.Value));
                    break;
                case TokenKind.VariableStart:
                    Next();
                    var value = ParseExpression();
                    Expect(TokenKind.VariableEnd, "}}");
                    nodes.Add(new OutputNode(value, token.Line, token.Column));
                    break;
                case TokenKind.BlockStart:
                    var name = tokens[pos + 1];
                    if (name.Kind == TokenKind.Name && stops.Contains(name.Value))
                    {
                        pos += 2;
                        stop = name.Value;
                        return nodes;
                    }
                    Next();
                    nodes.Add(ParseStatement(token));
                    break;
                default:
                    throw Error("unexpected token", token);
            }
        }
    }

    Node ParseStatement(Token start)
    {
        var keyword = Next();
        if (keyword.Kind != TokenKind.Name) throw Error("expected a statement name", keyword);
        switch (keyword.Value)
        {
            case "if": return ParseIf(start);
            case "for": return ParseFor(start);
            case "set": return ParseSet(start);
            case "macro": return ParseMacro(start);
            case "break": EndBlock(); return new BreakNode(start.Line, start.Column);
            case "continue": EndBlock(); return new ContinueNode(start.Line, start.Column);
            case "generation":
                EndBlock();
                var generated = ParseBody(out _, "endgeneration");
                EndBlock();
                return new GenerationNode(generated, start.Line, start.Column);
            default: throw Error($"unknown statement '{keyword.Value}'", keyword);
        }
    }

    Node ParseIf(Token start)
    {
        var branches = new List<(Expr, List<Node>)>();
        var condition = ParseExpression();
        EndBlock();
        while (true)
        {
            var body = ParseBody(out var stop, "elif", "else", "endif");
            branches.Add((condition, body));
            if (stop == "elif")
            {
                condition = ParseExpression();
                EndBlock();
                continue;
            }
            List<Node>? elseBody = null;
            if (stop == "else")
            {
                EndBlock();
                elseBody = ParseBody(out _, "endif");
            }
            EndBlock();
            return new IfNode(branches, elseBody, start.Line, start.Column);
        }
    }

    Node ParseFor(Token start)
    {
        var targets = new List<string> { ExpectName() };
        while (Current.IsOperator(","))
        {
            Next();
            targets.Add(ExpectName());
        }
        if (!Next().IsName("in")) throw Error("expected 'in'", tokens[pos - 1]);
        var iterable = ParseExpression(withConditional: false);
        Expr? filter = null;
        if (Current.IsName("if"))
        {
            Next();
            filter = ParseExpression(withConditional: false);
        }
        if (Current.IsName("recursive")) throw Error("recursive loops are not supported", Current);
        EndBlock();
        var body = ParseBody(out var stop, "else", "endfor");
        List<Node>? elseBody = null;
        if (stop == "else")
        {
            EndBlock();
            elseBody = ParseBody(out _, "endfor");
        }
        EndBlock();
        return new ForNode(targets, iterable, filter, body, elseBody, start.Line, start.Column);
    }

    Node ParseSet(Token start)
    {
        string name = ExpectName();
        string? attribute = null;
        if (Current.IsOperator("."))
        {
            Next();
            attribute = ExpectName();
        }
        if (Current.Kind == TokenKind.BlockEnd && attribute is null)
        {
            EndBlock();
            var body = ParseBody(out _, "endset");
            EndBlock();
            return new SetBlockNode(name, body, start.Line, start.Column);
        }
        Expect(TokenKind.Operator, "=");
        var value = ParseTuple();
        EndBlock();
        return new SetNode(name, attribute, value, start.Line, start.Column);
    }

    Node ParseMacro(Token start)
    {
        string name = ExpectName();
        Expect(TokenKind.Operator, "(");
        var parameters = new List<(string, Expr?)>();
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0) Expect(TokenKind.Operator, ",");
            string parameter = ExpectName();
            Expr? value = null;
            if (Current.IsOperator("="))
            {
                Next();
                value = ParseExpression();
            }
            parameters.Add((parameter, value));
        }
        Next();
        EndBlock();
        var body = ParseBody(out _, "endmacro");
        EndBlock();
        return new MacroNode(name, parameters, body, start.Line, start.Column);
    }

    /// <summary>An expression, or several separated by commas (a tuple without parentheses, as <c>set a = 1, 2</c> allows).</summary>
    Expr ParseTuple()
    {
        var first = ParseExpression();
        if (!Current.IsOperator(",")) return first;
        var items = new List<Expr> { first };
        while (Current.IsOperator(","))
        {
            Next();
            items.Add(ParseExpression());
        }
        return new ListExpr(items, IsTuple: true, first.Line, first.Column);
    }

    Expr ParseExpression(bool withConditional = true)
    {
        var value = ParseOr();
        if (!withConditional) return value;
        while (Current.IsName("if"))
        {
            var token = Next();
            var condition = ParseOr();
            Expr? otherwise = null;
            if (Current.IsName("else"))
            {
                Next();
                otherwise = ParseExpression();
            }
            value = new ConditionalExpr(value, condition, otherwise, token.Line, token.Column);
        }
        return value;
    }

    Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var token = Next();
            left = new BinaryExpr("or", left, ParseAnd(), token.Line, token.Column);
        }
        return left;
    }

    Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var token = Next();
            left = new BinaryExpr("and", left, ParseNot(), token.Line, token.Column);
        }
        return left;
    }

    Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            var token = Next();
            return new UnaryExpr("not", ParseNot(), token.Line, token.Column);
        }
        return ParseCompare();
    }

    Expr ParseCompare()
    {
        var left = ParseMath1();
        while (true)
        {
            var token = Current;
            string? op = null;
            if (token.Kind == TokenKind.Operator && token.Value is "==" or "!=" or "<" or ">" or "<=" or ">=") op = token.Value;
            else if (token.IsName("in")) op = "in";
            else if (token.IsName("not") && tokens[pos + 1].IsName("in")) { op = "not in"; Next(); }
            if (op is null) return left;
            Next();
            left = new BinaryExpr(op, left, ParseMath1(), token.Line, token.Column);
        }
    }

    Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var token = Next();
            left = new BinaryExpr(token.Value, left, ParseConcat(), token.Line, token.Column);
        }
        return left;
    }

    Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Current.IsOperator("~"))
        {
            var token = Next();
            left = new BinaryExpr("~", left, ParseMath2(), token.Line, token.Column);
        }
        return left;
    }

    Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var token = Next();
            left = new BinaryExpr(token.Value, left, ParsePow(), token.Line, token.Column);
        }
        return left;
    }

    Expr ParsePow()
    {
        var left = ParseUnary();
        while (Current.IsOperator("**"))
        {
            var token = Next();
            left = new BinaryExpr("**", left, ParseUnary(), token.Line, token.Column);
        }
        return left;
    }

    Expr ParseUnary(bool withFilter = true)
    {
        var token = Current;
        Expr node;
        if (token.IsOperator("-") || token.IsOperator("+"))
        {
            Next();
            node = new UnaryExpr(token.Value, ParseUnary(withFilter: false), token.Line, token.Column);
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        return withFilter ? ParseFilters(node) : node;
    }

    Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, token.Line, token.Column),
                    "false" or "False" => new LiteralExpr(false, token.Line, token.Column),
                    "none" or "None" => new LiteralExpr(null, token.Line, token.Column),
                    _ => new NameExpr(token.Value, token.Line, token.Column),
                };
            case TokenKind.String:
                string text = token.Value;
                while (Current.Kind == TokenKind.String) text += Next().Value; // adjacent literals join, as in Python
                return new LiteralExpr(text, token.Line, token.Column);
            case TokenKind.Integer:
                return new LiteralExpr(long.Parse(token.Value, CultureInfo.InvariantCulture), token.Line, token.Column);
            case TokenKind.Float:
                return new LiteralExpr(double.Parse(token.Value, CultureInfo.InvariantCulture), token.Line, token.Column);
            case TokenKind.Operator when token.Value == "(":
            {
                if (Current.IsOperator(")"))
                {
                    Next();
                    return new ListExpr([], IsTuple: true, token.Line, token.Column);
                }
                var first = ParseExpression();
                if (!Current.IsOperator(","))
                {
                    Expect(TokenKind.Operator, ")");
                    return first;
                }
                var items = new List<Expr> { first };
                while (Current.IsOperator(","))
                {
                    Next();
                    if (Current.IsOperator(")")) break;
                    items.Add(ParseExpression());
                }
                Expect(TokenKind.Operator, ")");
                return new ListExpr(items, IsTuple: true, token.Line, token.Column);
            }
            case TokenKind.Operator when token.Value == "[":
            {
                var items = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0) Expect(TokenKind.Operator, ",");
                    if (Current.IsOperator("]")) break;
                    items.Add(ParseExpression());
                }
                Next();
                return new ListExpr(items, IsTuple: false, token.Line, token.Column);
            }
            case TokenKind.Operator when token.Value == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!Current.IsOperator("}"))
                {
                    if (items.Count > 0) Expect(TokenKind.Operator, ",");
                    if (Current.IsOperator("}")) break;
                    var key = ParseExpression();
                    Expect(TokenKind.Operator, ":");
                    items.Add((key, ParseExpression()));
                }
                Next();
                return new DictExpr(items, token.Line, token.Column);
            }
            default:
                throw Error(token.Kind == TokenKind.End || token.Kind == TokenKind.BlockEnd || token.Kind == TokenKind.VariableEnd
                    ? "expected an expression" : $"unexpected '{token.Value}'", token);
        }
    }

    Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var token = Current;
            if (token.IsOperator("."))
            {
                Next();
                var name = Next();
                if (name.Kind == TokenKind.Integer) node = new IndexExpr(node, new LiteralExpr(long.Parse(name.Value, CultureInfo.InvariantCulture), name.Line, name.Column), token.Line, token.Column);
                else if (name.Kind == TokenKind.Name) node = new AttributeExpr(node, name.Value, token.Line, token.Column);
                else throw Error("expected an attribute name", name);
            }
            else if (token.IsOperator("["))
            {
                Next();
                node = ParseSubscript(node, token);
            }
            else if (token.IsOperator("("))
            {
                Next();
                var (arguments, keywords) = ParseArguments();
                node = new CallExpr(node, arguments, keywords, node.Line, node.Column);
            }
            else return node;
        }
    }

    Expr ParseSubscript(Expr target, Token open)
    {
        Expr? start = null, stop = null, step = null;
        if (!Current.IsOperator(":")) start = ParseExpression();
        if (Current.IsOperator("]"))
        {
            Next();
            return new IndexExpr(target, start ?? throw Error("expected an index", open), open.Line, open.Column);
        }
        Expect(TokenKind.Operator, ":");
        if (!Current.IsOperator("]") && !Current.IsOperator(":")) stop = ParseExpression();
        if (Current.IsOperator(":"))
        {
            Next();
            if (!Current.IsOperator("]")) step = ParseExpression();
        }
        Expect(TokenKind.Operator, "]");
        return new SliceExpr(target, start, stop, step, open.Line, open.Column);
    }

    (List<Expr>, List<(string, Expr)>) ParseArguments()
    {
        var arguments = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        while (!Current.IsOperator(")"))
        {
            if (arguments.Count + keywords.Count > 0) Expect(TokenKind.Operator, ",");
            if (Current.IsOperator(")")) break;
            if (Current.Kind == TokenKind.Name && tokens[pos + 1].IsOperator("="))
            {
                string name = Next().Value;
                Next();
                keywords.Add((name, ParseExpression()));
            }
            else arguments.Add(ParseExpression());
        }
        Next();
        return (arguments, keywords);
    }

    Expr ParseFilters(Expr node)
    {
        while (true)
        {
            var token = Current;
            if (token.IsOperator("|"))
            {
                Next();
                string name = ExpectDottedName();
                List<Expr> arguments = [];
                List<(string, Expr)> keywords = [];
                if (Current.IsOperator("("))
                {
                    Next();
                    (arguments, keywords) = ParseArguments();
                }
                node = new FilterExpr(node, name, arguments, keywords, token.Line, token.Column);
            }
            else if (token.IsName("is"))
            {
                Next();
                bool negated = false;
                if (Current.IsName("not"))
                {
                    Next();
                    negated = true;
                }
                string name = ExpectDottedName();
                List<Expr> arguments = [];
                if (Current.IsOperator("("))
                {
                    Next();
                    (arguments, _) = ParseArguments();
                }
                else if (Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                         && !(Current.Kind == TokenKind.Name && Current.Value is "else" or "or" or "and" or "if" or "is" or "in" or "not"))
                {
                    arguments.Add(ParsePostfix(ParsePrimary()));
                }
                node = new TestExpr(node, name, arguments, negated, token.Line, token.Column);
            }
            else if (token.IsOperator("("))
            {
                Next();
                var (arguments, keywords) = ParseArguments();
                node = new CallExpr(node, arguments, keywords, node.Line, node.Column);
            }
            else return node;
        }
    }

    string ExpectDottedName()
    {
        string name = ExpectName();
        while (Current.IsOperator(".") && tokens[pos + 1].Kind == TokenKind.Name)
        {
            Next();
            name += "." + Next().Value;
        }
        return name;
    }

    string ExpectName()
    {
        var token = Next();
        if (token.Kind != TokenKind.Name) throw Error("expected a name", token);
        return token.Value;
    }

    void EndBlock() => Expect(TokenKind.BlockEnd, "%}");

    void Expect(TokenKind kind, string text)
    {
        var token = Next();
        if (token.Kind != kind || (kind == TokenKind.Operator && token.Value != text))
            throw Error($"expected '{text}'", token);
    }

    static JinjaException Error(string message, Token token) => new(message, token.Line, token.Column);
}

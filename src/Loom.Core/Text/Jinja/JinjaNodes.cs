namespace Loom.Text.Jinja;

/// <summary>A node of a parsed template; <see cref="Line"/> and <see cref="Column"/> locate it for errors.</summary>
abstract record Node(int Line, int Column);

// Statements, in the order a template meets them.
sealed record TextNode(string Text) : Node(0, 0);
sealed record OutputNode(Expr Value, int L, int C) : Node(L, C);
sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else, int L, int C) : Node(L, C);
sealed record ForNode(List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else, int L, int C) : Node(L, C);
sealed record SetNode(string Name, string? Attribute, Expr Value, int L, int C) : Node(L, C);
sealed record SetBlockNode(string Name, List<Node> Body, int L, int C) : Node(L, C);
sealed record MacroNode(string Name, List<(string Name, Expr? Default)> Parameters, List<Node> Body, int L, int C) : Node(L, C);
sealed record BreakNode(int L, int C) : Node(L, C);
sealed record ContinueNode(int L, int C) : Node(L, C);
sealed record GenerationNode(List<Node> Body, int L, int C) : Node(L, C);

// Expressions.
abstract record Expr(int Line, int Column) : Node(Line, Column);
sealed record LiteralExpr(object? Value, int L, int C) : Expr(L, C);
sealed record NameExpr(string Name, int L, int C) : Expr(L, C);
sealed record ListExpr(List<Expr> Items, bool IsTuple, int L, int C) : Expr(L, C);
sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int L, int C) : Expr(L, C);
sealed record AttributeExpr(Expr Target, string Name, int L, int C) : Expr(L, C);
sealed record IndexExpr(Expr Target, Expr Index, int L, int C) : Expr(L, C);
sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int L, int C) : Expr(L, C);
sealed record CallExpr(Expr Function, List<Expr> Arguments, List<(string Name, Expr Value)> Keywords, int L, int C) : Expr(L, C);
sealed record FilterExpr(Expr Value, string Name, List<Expr> Arguments, List<(string Name, Expr Value)> Keywords, int L, int C) : Expr(L, C);
sealed record TestExpr(Expr Value, string Name, List<Expr> Arguments, bool Negated, int L, int C) : Expr(L, C);
sealed record UnaryExpr(string Operator, Expr Operand, int L, int C) : Expr(L, C);
sealed record BinaryExpr(string Operator, Expr Left, Expr Right, int L, int C) : Expr(L, C);
sealed record ConditionalExpr(Expr Then, Expr Condition, Expr? Else, int L, int C) : Expr(L, C);

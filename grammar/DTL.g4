// DTL.g4: the grammar of .dtl files (see docs/language.md).
grammar DTL;

program : decl* EOF ;

decl : importDecl | meshDecl | modelDecl | blockDecl | trainDecl ;

// import "blocks.dtl"; (relative to the importing file)
importDecl : 'import' path=STRING ';' ;

// mesh grid = [dp: 2, tp: 2];
meshDecl : 'mesh' name=ID '=' '[' meshAxis (',' meshAxis)* ']' ';' ;
meshAxis : name=ID ':' size=INT ;

// model mlp(B = 256, D = 784) { ... }
modelDecl : 'model' name=ID '(' (sizeParam (',' sizeParam)*)? ')' '{' stmt* '}' ;
sizeParam : name=ID ('=' size=INT)? ;

// block layer(x) { param ...; y = ...; return y; } : reusable, with its own params
blockDecl : 'block' name=ID '(' (args+=ID (',' args+=ID)*)? ')' '{' stmt* '}' ;

stmt
  : 'param' name=ID ':' tensorType sharding? ('init' initializer)? ('decay' decay=ID)? ';' # paramStmt
  | 'input' name=ID ':' tensorType sharding? ';'                       # inputStmt
  | name=ID '=' expr sharding? ';'                                     # assignStmt
  // q, k, v = split(qkv, C, dim = 2); : one name per piece
  | names+=ID (',' names+=ID)+ '=' expr ';'                            # unpackStmt
  // h = repeat L layer(x) pipeline pp; : the layers split into stages over pp
  | name=ID '=' 'repeat' count=expr call (recompute='recompute' level=ID?)?
    ('pipeline' ppAxis=ID)? ';'                                        # repeatStmt
  | 'return' expr ';'                                                  # returnStmt
  ;

// init normal(0.0, 0.02) ; init zeros
// decay true | decay false: whether the optimizer's weight_decay applies
// (by default to params of rank 2 or more)
initializer : call | ID ;

tensorType : dtype=ID '[' (dim (',' dim)*)? ']' ;
// a size: an integer expression of sizes, e.g. 4 * C
dim : expr ;

// shard [dp, _] ; a dimension split over several axes: (dp, tp)
sharding : 'shard' '[' shardDim (',' shardDim)* ']' ;
shardDim
  : ID                                  # oneAxis
  | '(' ID (',' ID)* ')'                # manyAxes
  ;

expr
  : '-' expr                            # negExpr
  | expr op=('@' | '*' | '/') expr      # mulExpr
  | expr op=('+' | '-') expr            # addExpr
  | call                                # callExpr
  | ID                                  # nameExpr
  | number                              # numberExpr
  | '(' expr ')'                        # parenExpr
  ;

call : callee=ID '(' (arg (',' arg)*)? ')' ;
arg : (key=ID '=')? value ;

// Values in calls and train settings: expressions, strings, tuples.
value
  : expr                                # exprValue
  | STRING                              # stringValue
  | BYTES                               # bytesValue
  | '(' value (',' value)+ ')'          # tupleValue
  | '1f1b'                              # oneFOneBValue
  ;

number : INT | FLOAT ;

// train mlp on grid { ... }
trainDecl : 'train' model=ID 'on' mesh=ID '{' trainStmt* '}' ;
trainStmt
  : kind=('data' | 'eval') ID (',' ID)* '=' call ';'  # dataStmt
  | key=(ID | 'pipeline') '=' value ';'              # settingStmt
  ;

// A size in bytes: 40GiB, 1.5TB (binary KiB..TiB, decimal KB..TB).
BYTES : [0-9]+ ('.' [0-9]+)? ('KiB' | 'MiB' | 'GiB' | 'TiB' | 'KB' | 'MB' | 'GB' | 'TB') ;
INT : [0-9]+ ;
FLOAT : [0-9]+ '.' [0-9]* ([eE] [+-]? [0-9]+)? | [0-9]+ [eE] [+-]? [0-9]+ ;
ID : [a-zA-Z_] [a-zA-Z0-9_]* ;
STRING : '"' (~["\\\r\n] | '\\' .)* '"' ;
LINE_COMMENT : '//' ~[\r\n]* -> skip ;
WS : [ \t\r\n]+ -> skip ;
